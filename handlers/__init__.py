"""Commands, buttons and forms, platform-neutral: `Request` in, `Reply` out."""
