"""/api/auth: phone OTP login, refresh-token rotation, logout. (Being built: issue 2.)"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
