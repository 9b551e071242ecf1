"""The Slack adapter: `platform` (the Bolt app, events in, replies out), `blocks` (Reply → Block
Kit), `gate` (the checks on raw requests before Bolt sees them) and `install` (OAuth installations)."""
from bot.slack.platform import EVENTS_PATH, SHORTCUTS, SlackPlatform

__all__ = ["EVENTS_PATH", "SHORTCUTS", "SlackPlatform"]
