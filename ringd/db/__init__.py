"""The storage engine: cells and their merge rules, commit log, memtable, sstables, compaction."""
