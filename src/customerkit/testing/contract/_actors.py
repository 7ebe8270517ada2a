"""The actors the contract acts as: one per role at ``loc-1``, and an admin of ``loc-2``."""

from __future__ import annotations

import customerkit as ck

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
MANAGER = ck.Actor(user_id="manager", role=ck.Role.SERVICE_MANAGER, location_id="loc-1")
ADVISOR = ck.Actor(user_id="advisor", role=ck.Role.SERVICE_ADVISOR, location_id="loc-1")
STAFF = ck.Actor(user_id="staff", role=ck.Role.STAFF, location_id="loc-1")
OTHER_ADMIN = ck.Actor(user_id="admin2", role=ck.Role.DEALER_ADMIN, location_id="loc-2")
