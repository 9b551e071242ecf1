"""Which Slack bot token reaches a customer book when the app is distributed (Slack OAuth).

slack-sdk's installation store (bot/slack/install.py) writes a `slack_bots` row per installation:
one per workspace, or one for a whole Enterprise Grid organisation (an org-wide install, no team).
A book is bound to its Slack workspace by a `spaces` row (the team id, or the org's id when Slack
named no team). Its token is the latest installation in that workspace, else the org-wide one of
the organisation the workspace was seen in (`slack_teams`). None once the app was uninstalled or
its tokens revoked (the store deleted the rows): deliveries to that book stop until it is
installed again.
"""
from __future__ import annotations

from sqlalchemy import Boolean, DateTime, and_, column, or_, select, table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import SlackTeam, Space

SLACK = "slack"
#: The tables of slack-sdk's SQLAlchemy installation and OAuth state stores, in our database: migration
#: 0009 creates them as slack-sdk defines them (tests/test_migrations.py checks they still match),
#: and slack-sdk's stores own them. Storage names them and reads the bot tokens; it needs no Slack library.
SLACK_INSTALLATIONS, SLACK_BOTS, SLACK_OAUTH_STATES = "slack_installations", "slack_bots", "slack_oauth_states"
#: What `bot_token` reads of the bots table.
_BOTS = table(SLACK_BOTS, column("client_id"), column("enterprise_id"), column("team_id"), column("bot_token"),
              column("is_enterprise_install", Boolean), column("installed_at", DateTime))


async def bot_token(session: AsyncSession, client_id: str, workspace_id: int) -> str | None:
    """The bot token that reaches the book's Slack workspace; None if the app is not installed there."""
    bots = _BOTS.c
    teams = select(Space.external_id).where(Space.platform == SLACK, Space.workspace_id == workspace_id)
    orgs = select(SlackTeam.enterprise_id).where(SlackTeam.team_id.in_(teams))
    org_wide = and_(bots.is_enterprise_install.is_(True), or_(bots.enterprise_id.in_(orgs),
                                                              bots.enterprise_id.in_(teams)))
    return await session.scalar(
        select(bots.bot_token)
        .where(bots.client_id == client_id, bots.bot_token.is_not(None), or_(bots.team_id.in_(teams), org_wide))
        .order_by(bots.installed_at.desc()).limit(1)
    )


async def note_org(session: AsyncSession, team_id: str, enterprise_id: str) -> None:
    """Remember that this workspace belongs to this Enterprise Grid organisation (first time only)."""
    dialect = session.get_bind().dialect.name
    insert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(SlackTeam)
    await session.execute(insert.values(team_id=team_id, enterprise_id=enterprise_id)
                          .on_conflict_do_nothing(index_elements=["team_id"]))
