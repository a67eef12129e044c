"""A tiny POSIX-sh for container commands: the command line and script (`script`), its grammar
(`syntax`), the interpreter (`interpreter`) and the utilities it knows (`utilities`)."""
