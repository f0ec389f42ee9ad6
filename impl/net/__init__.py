"""aiohttp server and client around the service cores: the only code that maps core
outcomes and errors to HTTP statuses, headers and bodies, and that owns sockets."""
