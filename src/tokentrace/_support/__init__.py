"""The shared leaves every package may use: internal-error counting (``errors``), text every sink can store
(``text``), fork safety (``forksafe``) and ``ConfigError`` (``config_error``). They import nothing of tokentrace but
each other, and no provider SDK."""
