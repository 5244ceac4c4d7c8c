// Module documentation lives in Docs/Architecture.md.
