-- Custom SQL (drizzle-kit cannot express functions, types or aggregates): PQL's sum() and
-- average() on PostgreSQL. The JS engine and SQLite add as SQLite's total() does (src/pql/runtime
-- KbnAccumulator): 64-bit integers exactly while the sum fits, then Kahan-Babuska-Neumaier in
-- doubles, in the items' order; PostgreSQL's sum() rounds differently. pql_total and pql_avg are
-- that accumulator step for step, called with ORDER BY the items' order. Where PostgreSQL float8
-- arithmetic raises an overflow or underflow error, JS gives ±Infinity or 0: so do these.
CREATE TYPE pql_kbn AS (approx boolean, isum numeric, rsum float8, rerr float8, n bigint);--> statement-breakpoint
CREATE FUNCTION pql_fadd(a float8, b float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  -- Two doubles below 2^1023 cannot overflow: only larger ones pay for the exception block.
  IF abs(a) < 8.988465674311e307 AND abs(b) < 8.988465674311e307 THEN
    RETURN a + b;
  END IF;
  BEGIN
    RETURN a + b;
  EXCEPTION WHEN numeric_value_out_of_range THEN
    RETURN CASE WHEN a > 0 THEN 'Infinity'::float8 ELSE '-Infinity'::float8 END;
  END;
END $$;--> statement-breakpoint
-- The integer JSON.stringify writes for an integral double from 2^53 to 1e21, as SQLite then
-- reads it: the fewest significant digits that read back as the same double (ties to the even
-- double inclusive), the closest such if several, as ECMAScript's Number::toString. PostgreSQL's
-- own shortest output cannot serve: it does not count the tie bounds in, so it sometimes writes
-- one digit more (2624271532680544256 prints as 2.6242715326805443e+18, JS writes 2624271532680544000).
CREATE FUNCTION pql_written_integer(v float8) RETURNS numeric LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  a float8 := abs(v);
  hi float8 := floor(a / 4294967296);
  -- The double's exact value, in two parts that each convert exactly.
  e numeric := CAST(hi AS bigint) * 4294967296::numeric + CAST(a - hi * 4294967296 AS bigint);
  b integer := 53;
  half numeric;
  even boolean;
  scale numeric;
  c numeric;
  best numeric;
BEGIN
  WHILE power(2::numeric, b + 1) <= e LOOP
    b := b + 1;
  END LOOP;
  half := power(2::numeric, b - 52) / 2;
  even := mod(e / (half * 2), 2) = 0;
  FOR k IN 1..17 LOOP
    scale := power(10::numeric, length(CAST(e AS text)) - k);
    best := NULL;
    FOREACH c IN ARRAY ARRAY[floor(e / scale) * scale, ceil(e / scale) * scale] LOOP
      IF abs(c - e) < half OR (even AND abs(c - e) = half) THEN
        IF best IS NULL OR abs(c - e) < abs(best - e) OR (abs(c - e) = abs(best - e) AND mod(c / scale, 2) = 0) THEN
          best := c;
        END IF;
      END IF;
    END LOOP;
    IF best IS NOT NULL THEN
      RETURN CASE WHEN v < 0 THEN -best ELSE best END;
    END IF;
  END LOOP;
  RETURN CASE WHEN v < 0 THEN -e ELSE e END;
END $$;--> statement-breakpoint
CREATE FUNCTION pql_kbn_step(st pql_kbn, r float8) RETURNS pql_kbn LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  s float8 := st.rsum;
  t float8 := pql_fadd(st.rsum, r);
BEGIN
  IF abs(s) > abs(r) THEN
    st.rerr := pql_fadd(st.rerr, pql_fadd(s - t, r));
  ELSE
    st.rerr := pql_fadd(st.rerr, pql_fadd(r - t, s));
  END IF;
  st.rsum := t;
  RETURN st;
END $$;--> statement-breakpoint
-- A 64-bit integer added in doubles: beyond 2^52 in two parts that each convert exactly.
CREATE FUNCTION pql_kbn_step_int(st pql_kbn, v numeric) RETURNS pql_kbn LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  small numeric;
BEGIN
  IF v <= -4503599627370496 OR v >= 4503599627370496 THEN
    small := mod(v, 16384);
    st := pql_kbn_step(st, CAST(v - small AS float8));
    RETURN pql_kbn_step(st, CAST(small AS float8));
  END IF;
  RETURN pql_kbn_step(st, CAST(v AS float8));
END $$;--> statement-breakpoint
-- From the integer sum so far to doubles, split the same way.
CREATE FUNCTION pql_kbn_approx(st pql_kbn) RETURNS pql_kbn LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  small numeric;
BEGIN
  st.approx := true;
  IF st.isum <= -4503599627370496 OR st.isum >= 4503599627370496 THEN
    small := mod(st.isum, 16384);
    st.rsum := CAST(st.isum - small AS float8);
    st.rerr := CAST(small AS float8);
  ELSE
    st.rsum := CAST(st.isum AS float8);
    st.rerr := 0;
  END IF;
  RETURN st;
END $$;--> statement-breakpoint
CREATE FUNCTION pql_kbn_add(st pql_kbn, value float8) RETURNS pql_kbn LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  iv numeric;
  x numeric;
BEGIN
  IF value IS NULL OR value IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8) THEN
    RETURN st;
  END IF;
  st.n := st.n + 1;
  -- The INTEGER SQLite reads for this number: integral, and within 64 bits as written.
  IF value = trunc(value) THEN
    IF abs(value) <= 9007199254740991 THEN
      iv := CAST(value AS bigint);
    ELSIF abs(value) < 1e21 THEN
      iv := pql_written_integer(value);
      IF iv < -9223372036854775808 OR iv > 9223372036854775807 THEN
        iv := NULL;
      END IF;
    END IF;
  END IF;
  IF st.approx THEN
    IF iv IS NOT NULL THEN
      RETURN pql_kbn_step_int(st, iv);
    END IF;
    RETURN pql_kbn_step(st, value);
  END IF;
  IF iv IS NULL THEN
    RETURN pql_kbn_step(pql_kbn_approx(st), value);
  END IF;
  x := st.isum + iv;
  IF x BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
    st.isum := x;
    RETURN st;
  END IF;
  RETURN pql_kbn_step_int(pql_kbn_approx(st), iv);
END $$;--> statement-breakpoint
CREATE FUNCTION pql_kbn_total(st pql_kbn) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  r float8;
BEGIN
  IF NOT st.approx THEN
    RETURN CAST(st.isum AS float8);
  END IF;
  IF st.rerr IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8) THEN
    r := st.rsum;
  ELSE
    r := pql_fadd(st.rsum, st.rerr);
  END IF;
  -- NaN (+Infinity and -Infinity added) compares as missing in PQL.
  RETURN CASE WHEN r = 'NaN'::float8 THEN NULL ELSE r END;
END $$;--> statement-breakpoint
CREATE FUNCTION pql_kbn_average(st pql_kbn) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  r float8;
BEGIN
  IF st.n = 0 THEN
    RETURN NULL;
  END IF;
  r := pql_kbn_total(st);
  IF r IS NULL OR abs(r) >= 1e-290 THEN
    RETURN r / st.n;
  END IF;
  BEGIN
    RETURN r / st.n;
  EXCEPTION WHEN numeric_value_out_of_range THEN
    RETURN 0;
  END;
END $$;--> statement-breakpoint
CREATE AGGREGATE pql_total(float8) (SFUNC = pql_kbn_add, STYPE = pql_kbn, FINALFUNC = pql_kbn_total, INITCOND = '(f,0,0,0,0)');--> statement-breakpoint
CREATE AGGREGATE pql_avg(float8) (SFUNC = pql_kbn_add, STYPE = pql_kbn, FINALFUNC = pql_kbn_average, INITCOND = '(f,0,0,0,0)');
