-- Custom SQL (drizzle-kit cannot express functions): an instant within a millisecond of the epoch
-- that is not whole (0 moved by an amount of 5e-324 ms, which the differential generator draws)
-- divided by a day or a second gives a quotient too small for a double. JS rounds it to ±0 and
-- goes on; PostgreSQL raises "value out of range: underflow". Every floor division of an instant
-- in pql_civil and pql_period_start now goes through pql_floor_div, which gives JS's ±0 there (a
-- subtransaction only for such instants, so other rows pay one comparison).
CREATE FUNCTION pql_floor_div(a float8, b float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  IF a <> 0 AND abs(a) < 1 THEN
    BEGIN
      RETURN floor(a / b);
    EXCEPTION WHEN numeric_value_out_of_range THEN
      RETURN 0;
    END;
  END IF;
  RETURN floor(a / b);
END $$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION pql_civil(ms float8, OUT y float8, OUT m float8, OUT d float8, OUT tod float8)
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  days float8 := pql_floor_div(ms, 86400000);
  z float8 := days + 719468;
  era float8 := floor(z / 146097);
  doe float8 := z - era * 146097;
  yoe float8 := floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365);
  doy float8 := doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100));
  mp float8 := floor((5 * doy + 2) / 153);
BEGIN
  tod := ms - days * 86400000;
  d := doy - floor((153 * mp + 2) / 5) + 1;
  m := CASE WHEN mp < 10 THEN mp + 3 ELSE mp - 9 END;
  y := yoe + era * 400 + CASE WHEN m <= 2 THEN 1 ELSE 0 END;
END $$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION pql_period_start(ms float8, unit text) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  days float8;
  c record;
BEGIN
  CASE unit
    WHEN 'millisecond' THEN RETURN floor(ms);
    WHEN 'second' THEN RETURN pql_floor_div(ms, 1000) * 1000;
    WHEN 'minute' THEN RETURN pql_floor_div(ms, 60000) * 60000;
    WHEN 'hour' THEN RETURN pql_floor_div(ms, 3600000) * 3600000;
    WHEN 'day' THEN RETURN pql_floor_div(ms, 86400000) * 86400000;
    -- 1970-01-01 was a Thursday: (days + 3) mod 7 is the days since Monday.
    WHEN 'week' THEN
      days := pql_floor_div(ms, 86400000);
      RETURN (days - ((days + 3) - 7 * floor((days + 3) / 7))) * 86400000;
    ELSE
      c := pql_civil(ms);
      RETURN pql_days_from_civil(c.y, CASE WHEN unit = 'year' THEN 1 ELSE c.m END, 1) * 86400000;
  END CASE;
END $$;
