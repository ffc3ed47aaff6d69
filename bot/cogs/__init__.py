"""Discord commands by area: video (make, refine, extend), library (history, queue, cancel), member (settings,
help), config (a server's own settings),
characters (reusable subjects). Each cog module is a discord.py extension (`async def setup(bot)`),
loaded by name by the composition root (`bot.app`); each translates Discord objects into the studio's plain data
and back. Helper modules start with `_`: `_common` (services, who asks, where the answer goes, the one error
handler), `_clips` (a posted request, the clip's persistent buttons and modals)."""

EXTENSIONS = ("bot.cogs.video", "bot.cogs.library", "bot.cogs.member", "bot.cogs.config", "bot.cogs.characters")
