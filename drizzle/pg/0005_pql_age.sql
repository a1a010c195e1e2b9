-- Custom SQL (drizzle-kit cannot express functions): PQL's age(t) as a value on PostgreSQL, in
-- whole calendar years as the JS engine counts them (src/pql/runtime/time.ts ageInYears): the
-- largest n with t + n years <= now, where adding years keeps the time of day and clamps Feb 29 to
-- Feb 28. Proleptic Gregorian dates from epoch ms by H. Hinnant's civil algorithms, in float8
-- with floor() exactly as the JS code does them with Math.floor, so the two engines agree for
-- every instant, whatever its year.
CREATE FUNCTION pql_civil(ms float8, OUT y float8, OUT m float8, OUT d float8, OUT tod float8)
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  days float8 := floor(ms / 86400000);
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
CREATE FUNCTION pql_add_years(ms float8, n float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  c record := pql_civil(ms);
  mi float8 := c.y * 12 + (c.m - 1) + trunc(n) * 12;
  y float8 := floor(mi / 12);
  m float8 := mi - y * 12 + 1;
  leap boolean := (mod(CAST(y AS numeric), 4) = 0 AND mod(CAST(y AS numeric), 100) <> 0) OR mod(CAST(y AS numeric), 400) = 0;
  dim float8 := CASE WHEN m = 2 THEN CASE WHEN leap THEN 29 ELSE 28 END WHEN m IN (4, 6, 9, 11) THEN 30 ELSE 31 END;
  d float8 := least(c.d, dim);
  yy float8 := CASE WHEN m <= 2 THEN y - 1 ELSE y END;
  era float8 := floor(yy / 400);
  yoe float8 := yy - era * 400;
  mp float8 := mod(CAST(m + 9 AS numeric), 12);
  doy float8 := floor((153 * mp + 2) / 5) + d - 1;
  doe float8 := yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy;
BEGIN
  RETURN (era * 146097 + doe - 719468) * 86400000 + c.tod;
END $$;--> statement-breakpoint
CREATE FUNCTION pql_age(t float8, now float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  n float8;
BEGIN
  IF t > now THEN
    RETURN NULL;
  END IF;
  n := (pql_civil(now)).y - (pql_civil(t)).y;
  IF pql_add_years(t, n) > now THEN
    n := n - 1;
  END IF;
  RETURN n;
END $$;
