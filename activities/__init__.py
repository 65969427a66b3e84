"""Effects: each activity touches one outside system and is safe to retry."""
