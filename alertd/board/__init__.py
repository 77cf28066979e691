"""The web incident board: server-rendered pages for on-call engineers (``/board/``).

``routes.board_routes`` serves them on the daemon's listener; ``read`` queries the state
database for them, ``forms`` checks what people type, ``session`` signs login cookies.
"""
