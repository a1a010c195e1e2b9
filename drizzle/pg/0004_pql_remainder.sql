-- Custom SQL (drizzle-kit cannot express functions): PQL's % operator on PostgreSQL. The JS
-- engine's `%` is C's fmod() of two doubles — exact, with the sign of the dividend — and SQLite's
-- mod() is the same; PostgreSQL has no float8 remainder, and numeric from float8 keeps only 15
-- digits. So the doubles are taken as the exact numbers they are (pql_exact_numeric), numeric's
-- exact mod() applied, and the result, which a double always holds exactly, cast back.
CREATE FUNCTION pql_exact_numeric(x float8) RETURNS numeric LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  a float8 := abs(x);
  k integer := 0;
  m numeric;
  digits text;
BEGIN
  IF a = 0 THEN
    RETURN 0;
  END IF;
  -- a = m * 2^k with m an integer below 2^53: scaling by powers of two is exact here.
  WHILE a < 1 LOOP
    a := a * 4294967296;
    k := k - 32;
  END LOOP;
  WHILE a < 4503599627370496 AND a <> trunc(a) LOOP
    a := a * 2;
    k := k - 1;
  END LOOP;
  WHILE a >= 9007199254740992 LOOP
    a := a / 2;
    k := k + 1;
  END LOOP;
  m := CAST(a AS bigint);
  IF k >= 0 THEN
    m := m * trunc(power(2::numeric, k));
  ELSE
    -- m / 2^-k = m * 5^-k / 10^-k: the digits of m * 5^-k with the point -k places from the right.
    digits := CAST(m * trunc(power(5::numeric, -k)) AS text);
    digits := lpad(digits, greatest(length(digits), -k + 1), '0');
    m := CAST(left(digits, length(digits) + k) || '.' || right(digits, -k) AS numeric);
  END IF;
  RETURN CASE WHEN x < 0 THEN -m ELSE m END;
END $$;--> statement-breakpoint
CREATE FUNCTION pql_fmod(x float8, y float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  IF y = 0 THEN
    RETURN NULL;
  END IF;
  -- Integers a bigint holds exactly: the bigint remainder, which also keeps the dividend's sign.
  IF x = trunc(x) AND y = trunc(y) AND abs(x) <= 9007199254740992 AND abs(y) <= 9007199254740992 THEN
    RETURN CAST(CAST(x AS bigint) % CAST(y AS bigint) AS float8);
  END IF;
  RETURN CAST(mod(pql_exact_numeric(x), pql_exact_numeric(y)) AS float8);
END $$;
