-- Definitions saved before versions were kept get their current state as their first version;
-- who made it is not known.
INSERT INTO `definition_versions` (sandbox_id, definition_id, version, expression_format, expression_value, expression_text,
  eval_batch, eval_streaming, eval_edge, changed_at, changed_by)
SELECT sandbox_id, id, version, expression_format, expression_value, expression_text, eval_batch, eval_streaming, eval_edge,
  updated_at, 'unknown'
FROM `segment_definitions`;
