"""Settings from the environment or `.env`; every one is listed in `.env.example`."""
from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "sqlite:///crm.db"
    telegram_bot_token: str | None = None
    telegram_api_base_url: str | None = None
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None
    slack_bot_token: str | None = None
    #: Slack OAuth distribution (bot.slack.install): one installation per workspace instead of one token.
    slack_client_id: str | None = None
    slack_client_secret: str | None = None
    slack_redirect_uri: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str | None = None
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    default_timezone: str = "Asia/Shanghai"
    default_locale: str = "zh"
    reminder_poll_seconds: float = Field(default=30, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @property
    def has_telegram(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def has_slack(self) -> bool:
        return bool(self.slack_bot_token) or self.slack_oauth

    def conflict(self) -> tuple[str, dict[str, str]] | None:
        """Settings that contradict each other, as the catalogue key that says so (cli.toml) and its
        values; None when they agree. `crm-bot run` refuses to start on one."""
        if bool(self.slack_client_id) != bool(self.slack_client_secret):
            missing = "SLACK_CLIENT_SECRET" if self.slack_client_id else "SLACK_CLIENT_ID"
            return "cli.slack_oauth_half", {"missing": missing}
        if self.slack_oauth and self.slack_bot_token:
            return "cli.slack_token_and_oauth", {}
        return None

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where /metrics and /healthz are served apart from the public port, if they are."""
        return (self.metrics_host, self.metrics_port) if self.metrics_port else None

    @property
    def slack_oauth(self) -> bool:
        """Installed through Slack's OAuth flow ("Add to Slack"): any number of workspaces."""
        return bool(self.slack_client_id and self.slack_client_secret)
