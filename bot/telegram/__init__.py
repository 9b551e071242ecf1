"""The Telegram adapter: `platform` (the PTB Application, updates in, replies out), `render`
(Reply → HTML and inline keyboards) and `transport` (polling, ordering per chat, the lease)."""
from bot.telegram.platform import TelegramPlatform, api_urls, derived_secret

__all__ = ["TelegramPlatform", "api_urls", "derived_secret"]
