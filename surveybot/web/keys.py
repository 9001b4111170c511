"""The application's typed keys, in one place."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from jinja2 import Environment
from sqlite_utils import Database

from surveybot.config import Settings
from surveybot.dispatcher import Dispatcher
from surveybot.inbox import InboxWorker
from surveybot.schedule import Planner

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
SECRET = web.AppKey("secret", str)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
PLANNER = web.AppKey("planner", Planner)
HTTP = web.AppKey("http", aiohttp.ClientSession)
INBOX = web.AppKey("inbox", InboxWorker)
PAGES = web.AppKey("pages", Environment)
