"""Discord commands by area: video (make, refine, extend), library (history, queue, cancel), member (settings,
help). Each cog translates Discord objects into the studio's plain data and back."""
