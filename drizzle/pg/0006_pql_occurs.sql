-- Custom SQL (drizzle-kit cannot express functions): `t occurs <tail>` on PostgreSQL when its
-- window depends on a per-row time in calendar units (`occurs 1 month before ^.createdAt`,
-- `on`/`between` a field): the window of src/pql/runtime/time.ts occursBounds, step for step, in
-- float8 with floor() as the JS code computes it, and whether t is inside (occursHolds). The
-- compiler passes every instant as epoch ms and the tail's shape as the JSON of its OccursSpec.
-- Where float8 arithmetic would raise an overflow error JS gets ±Infinity, and a window with a
-- bound that is not finite holds for no t: so here too.
CREATE FUNCTION pql_days_from_civil(y float8, m float8, d float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  yy float8 := CASE WHEN m <= 2 THEN y - 1 ELSE y END;
  era float8 := floor(yy / 400);
  yoe float8 := yy - era * 400;
  mp float8 := CASE WHEN m > 2 THEN m - 3 ELSE m + 9 END;
  doy float8 := floor((153 * mp + 2) / 5) + d - 1;
  doe float8 := yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy;
BEGIN
  RETURN era * 146097 + doe - 719468;
END $$;--> statement-breakpoint
-- ms + n units: fixed units exactly, months and years as calendar arithmetic that keeps the time
-- of day and clamps the day to the month (runtime addUnits).
CREATE FUNCTION pql_add_units_unguarded(ms float8, unit text, n float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  c record;
  mi float8;
  y float8;
  m float8;
  leap boolean;
  dim float8;
BEGIN
  CASE unit
    WHEN 'millisecond' THEN RETURN ms + n;
    WHEN 'second' THEN RETURN ms + n * 1000;
    WHEN 'minute' THEN RETURN ms + n * 60000;
    WHEN 'hour' THEN RETURN ms + n * 3600000;
    WHEN 'day' THEN RETURN ms + n * 86400000;
    WHEN 'week' THEN RETURN ms + n * 604800000;
    ELSE
  END CASE;
  c := pql_civil(ms);
  mi := c.y * 12 + (c.m - 1) + trunc(n) * CASE WHEN unit = 'year' THEN 12 ELSE 1 END;
  y := floor(mi / 12);
  m := mi - y * 12 + 1;
  leap := (y - 4 * floor(y / 4) = 0 AND y - 100 * floor(y / 100) <> 0) OR y - 400 * floor(y / 400) = 0;
  dim := CASE WHEN m = 2 THEN CASE WHEN leap THEN 29 ELSE 28 END WHEN m IN (4, 6, 9, 11) THEN 30 ELSE 31 END;
  RETURN pql_days_from_civil(y, m, least(c.d, dim)) * 86400000 + c.tod;
END $$;--> statement-breakpoint
-- The same, with ±Infinity (here NaN: a bound that holds for nothing) where float8 would raise.
CREATE FUNCTION pql_add_units(ms float8, unit text, n float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  IF abs(n) > 1e12 OR abs(ms) > 1e290 THEN
    -- Far out of any calendar: let float8 decide, ±Infinity (or NaN) where it would raise.
    BEGIN
      RETURN pql_add_units_unguarded(ms, unit, n);
    EXCEPTION WHEN numeric_value_out_of_range THEN
      RETURN 'NaN'::float8;
    END;
  END IF;
  RETURN pql_add_units_unguarded(ms, unit, n);
END $$;--> statement-breakpoint
-- One way of adding years: age() (0005) now goes through the same calendar arithmetic.
CREATE OR REPLACE FUNCTION pql_add_years(ms float8, n float8) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT pql_add_units(ms, 'year', n)
$$;--> statement-breakpoint
-- Start of the calendar period of `unit` containing ms (ISO weeks start on Monday).
CREATE FUNCTION pql_period_start(ms float8, unit text) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  days float8 := floor(ms / 86400000);
  c record;
BEGIN
  CASE unit
    WHEN 'millisecond' THEN RETURN floor(ms);
    WHEN 'second' THEN RETURN floor(ms / 1000) * 1000;
    WHEN 'minute' THEN RETURN floor(ms / 60000) * 60000;
    WHEN 'hour' THEN RETURN floor(ms / 3600000) * 3600000;
    WHEN 'day' THEN RETURN days * 86400000;
    -- 1970-01-01 was a Thursday: (days + 3) mod 7 is the days since Monday.
    WHEN 'week' THEN RETURN (days - ((days + 3) - 7 * floor((days + 3) / 7))) * 86400000;
    ELSE
      c := pql_civil(ms);
      RETURN pql_days_from_civil(c.y, CASE WHEN unit = 'year' THEN 1 ELSE c.m END, 1) * 86400000;
  END CASE;
END $$;--> statement-breakpoint
CREATE FUNCTION pql_occurs(t float8, spec jsonb, ref float8, "to" float8, now float8) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  shape jsonb := spec -> 'shape';
  form text := shape ->> 'form';
  unit text := shape ->> 'unit';
  before boolean := shape ->> 'direction' = 'before';
  r float8;
  shifted float8;
  lo float8;
  lo_in boolean := true;
  hi float8;
  hi_in boolean := false;
  negate boolean := false;
  inside boolean;
BEGIN
  IF t IS NULL OR now IS NULL THEN
    RETURN false;
  END IF;
  IF form = 'period' THEN
    lo := pql_period_start(now, unit);
    IF shape ->> 'which' <> 'this' THEN
      lo := pql_period_start(pql_add_units(lo, unit, CASE WHEN shape ->> 'which' = 'last' THEN -1 ELSE 1 END), unit);
    END IF;
    hi := pql_add_units(lo, unit, 1);
  ELSE
    IF ref IS NULL THEN
      RETURN false;
    END IF;
    r := CASE WHEN (spec ->> 'refDay')::boolean THEN floor(ref / 86400000) * 86400000 ELSE ref END;
    CASE form
      WHEN 'on' THEN
        lo := floor(r / 86400000) * 86400000;
        hi := lo + 86400000;
      WHEN 'beforeAfter' THEN
        IF before THEN
          lo := NULL;
          hi := r;
        ELSIF (spec ->> 'refDay')::boolean THEN
          lo := r + 86400000;
          hi := NULL;
        ELSE
          lo := r;
          lo_in := false;
          hi := NULL;
        END IF;
      WHEN 'between' THEN
        IF "to" IS NULL THEN
          RETURN false;
        END IF;
        lo := r;
        IF (spec ->> 'toDay')::boolean THEN
          hi := floor("to" / 86400000) * 86400000 + 86400000;
        ELSE
          hi := "to";
          hi_in := true;
        END IF;
      ELSE
        shifted := pql_add_units(r, unit, CASE WHEN before THEN -1 ELSE 1 END * CAST(shape ->> 'amount' AS float8));
        IF shifted IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8) THEN
          RETURN false;
        END IF;
        CASE shape ->> 'op'
          WHEN '=', '!=' THEN
            lo := pql_period_start(shifted, unit);
            hi := pql_add_units(lo, unit, 1);
            negate := shape ->> 'op' = '!=';
          WHEN '<=' THEN
            IF before THEN lo := shifted; hi := r; ELSE lo := r; hi := shifted; END IF;
            hi_in := true;
          WHEN '<' THEN
            IF before THEN lo := shifted; lo_in := false; hi := r; hi_in := true; ELSE lo := r; hi := shifted; END IF;
          WHEN '>=' THEN
            IF before THEN lo := NULL; hi := shifted; hi_in := true; ELSE lo := shifted; hi := NULL; END IF;
          ELSE
            IF before THEN lo := NULL; hi := shifted; ELSE lo := shifted; lo_in := false; hi := NULL; END IF;
        END CASE;
    END CASE;
  END IF;
  IF lo IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8)
     OR hi IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8) THEN
    RETURN false;
  END IF;
  inside := (lo IS NULL OR CASE WHEN lo_in THEN t >= lo ELSE t > lo END)
        AND (hi IS NULL OR CASE WHEN hi_in THEN t <= hi ELSE t < hi END);
  RETURN CASE WHEN negate THEN NOT inside ELSE inside END;
END $$;
