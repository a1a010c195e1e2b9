-- Custom SQL (drizzle-kit cannot express functions): PQL's `*` and `/` on PostgreSQL, one call
-- each, so that the compiler writes an arithmetic chain as one flat expression in which each
-- operand appears once (pql_fadd, 0003_pql_sums.sql, is the same for `+` and `-`). The JS engine
-- multiplies and divides doubles (runtime arithmetic); float8 does the same IEEE operation but
-- raises an error where the result overflows (JS: ±Infinity, missing in PQL) or where a non-zero
-- result rounds to 0 (JS: 0). These return NULL and 0 there, float8's own result elsewhere. The
-- operands are finite: the compiler makes every non-finite result missing.
CREATE FUNCTION pql_fmul(a float8, b float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  -- A product of magnitudes within 1e-145..1e145 lies within 1e-290..1e290: only others pay for
  -- the exception block.
  IF (abs(a) BETWEEN 1e-145 AND 1e145 AND abs(b) BETWEEN 1e-145 AND 1e145) OR a = 0 OR b = 0 THEN
    RETURN a * b;
  END IF;
  BEGIN
    RETURN a * b;
  EXCEPTION WHEN numeric_value_out_of_range THEN
    -- Overflow and underflow raise the same error; the magnitudes (past 1e308 or below 5e-324,
    -- far from 1) say which it was.
    RETURN CASE WHEN ln(abs(a)) + ln(abs(b)) > 0 THEN NULL ELSE CAST(0 AS float8) END;
  END;
END $$;--> statement-breakpoint
CREATE FUNCTION pql_fdiv(a float8, b float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  IF b = 0 THEN
    RETURN NULL;
  END IF;
  IF (abs(a) BETWEEN 1e-145 AND 1e145 AND abs(b) BETWEEN 1e-145 AND 1e145) OR a = 0 THEN
    RETURN a / b;
  END IF;
  BEGIN
    RETURN a / b;
  EXCEPTION WHEN numeric_value_out_of_range THEN
    RETURN CASE WHEN ln(abs(a)) - ln(abs(b)) > 0 THEN NULL ELSE CAST(0 AS float8) END;
  END;
END $$;
