"""Pure domain: records, lifecycle rules, scheduling rules, meeting URLs. No I/O."""
