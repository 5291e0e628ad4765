"""What admin decisions tell users (type `system`, through domain.notices.send, so inbox, live
NOTIFICATION on the feed and push as the user's preferences allow), in the decision's transaction.

| event (`data.event`) | who | title |
|---|---|---|
| id_verified | the user whose document was approved | Identity verified |
| id_verification_rejected (`data.reason`) | the user whose document was rejected | ID rejected |"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.notices import Notice, send

if TYPE_CHECKING:
    from hub.db import Conn


async def id_verification_decided(
    conn: Conn, *, user_id: str, verification_id: str, approved: bool, reason: str | None
) -> None:
    """The user hears their ID document was approved, or rejected with the reason."""
    data = {"verificationId": verification_id, "reason": reason}
    if approved:
        notice = Notice(
            user_id, "system", "id_verified", "Identity verified",
            "Your identity document was approved; your profile now shows you as verified.", data,
        )  # fmt: skip
    else:
        notice = Notice(
            user_id, "system", "id_verification_rejected", "ID rejected",
            f"Your identity document was not accepted: {reason or 'no reason given'}."
            " You can submit another one.", data,
        )  # fmt: skip
    await send(conn, [notice])
