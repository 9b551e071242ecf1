"""A handler `Context` for someone the bot writes to first, so delivered messages reuse the
handlers' texts, times and buttons in the recipient's language and time zone."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.context import Context, Services
from handlers.i18n import normalize_locale
from handlers.messages import Request
from storage.schedule import Recipient, zone


def context_for(services: Services, session: AsyncSession, recipient: Recipient, now: datetime) -> Context:
    account = recipient.preferred
    request = Request(platform=account.platform if account else "scheduler",
                      user_id=account.external_id if account else "", chat_id=(account.dm_chat_id or "") if account else "")
    return Context(
        services=services, session=session, request=request, now=now,
        locale=normalize_locale(recipient.language, recipient.workspace.locale),
        tz=zone(recipient.timezone, recipient.workspace.timezone),
        workspace=recipient.workspace, member=recipient.member,
    )
