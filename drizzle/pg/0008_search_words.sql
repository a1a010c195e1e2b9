-- Custom SQL (drizzle-kit cannot express extensions, text search configurations or functions):
-- words for search as SQLite's FTS5 tokenizer (unicode61 remove_diacritics 2) makes them.
-- PostgreSQL's parser keeps `homeAddress.city` or `foo_bar` as one token and keeps accents, so
-- the text is first cut on anything not a letter or digit (segql_search_words, after NFKC, so a
-- decomposed letter stays one letter), and the `segql_search` configuration folds each word
-- with unaccent, then lower-cases it (simple: no stemming, no stop words). The generated
-- search_vector of search_documents and every query of src/domain/search/ts-match.ts use both.
-- unaccent is a trusted extension (PostgreSQL 13+): the database owner may create it.
CREATE EXTENSION IF NOT EXISTS unaccent;--> statement-breakpoint
CREATE TEXT SEARCH CONFIGURATION segql_search (COPY = simple);--> statement-breakpoint
ALTER TEXT SEARCH CONFIGURATION segql_search ALTER MAPPING FOR asciiword, word, numword, asciihword, hword, numhword,
  hword_asciipart, hword_part, hword_numpart, email, protocol, url, host, url_path, file, sfloat, float, int, uint,
  version, tag, entity WITH unaccent, simple;--> statement-breakpoint
CREATE FUNCTION segql_search_words(x text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT regexp_replace(normalize(coalesce(x, ''), NFKC), '[^[:alnum:]]+', ' ', 'g')
$$;
