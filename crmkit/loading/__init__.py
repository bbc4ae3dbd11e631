"""Loading and storing a workspace's files: safe YAML with positions, the file
formats, finding and linking records, and writing new ones atomically."""
