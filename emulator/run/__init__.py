"""The run supervisor behind `aetrig run`: starts the stages as processes, shows live status,
merges their reports into summary.json."""
