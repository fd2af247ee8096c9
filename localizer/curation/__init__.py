"""The data loop: finding label errors (the audit), choosing what to label next (selection)."""
