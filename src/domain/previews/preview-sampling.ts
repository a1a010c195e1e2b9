export function runPreviewTask(): unknown { return undefined; }
