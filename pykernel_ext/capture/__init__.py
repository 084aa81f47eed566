"""What a run records: code closure, parameters, data hashes, environment, git state and hardware."""
