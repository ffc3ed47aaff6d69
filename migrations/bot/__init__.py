"""The bot's migration history (upgraded by the bot at start)."""
