"""The application's typed keys, in one place."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from jinja2 import Environment
from sqlite_utils import Database

from surveybot.config import Settings
from surveybot.dispatcher import Dispatcher
from surveybot.inbox import InboxWorker, Intake
from surveybot.schedule import Planner
from surveybot.supervise import Health
from surveybot.web.figures import Figures
from surveybot.web.throttle import SignInGuard

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
SECRET = web.AppKey("secret", str)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
PLANNER = web.AppKey("planner", Planner)
HTTP = web.AppKey("http", aiohttp.ClientSession)
INBOX = web.AppKey("inbox", InboxWorker)
INTAKE = web.AppKey("intake", Intake)
WAVES = web.AppKey("waves", dict)  # slug -> (expires, wave row or None)
PAGES = web.AppKey("pages", Environment)
HEALTH = web.AppKey("health", Health)
LEASE_LOST = web.AppKey("lease_lost", bool)
FIGURES = web.AppKey("figures", Figures)  # the dashboard's figures, computed off the event loop
SIGN_IN_GUARD = web.AppKey("sign_in_guard", SignInGuard)  # failed sign-ins per client and per token
