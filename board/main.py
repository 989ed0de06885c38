# vpump board entry: MicroPython runs main.py after every reset.  The pump's code is
# vpump_main (board/vpump_main.py, compiled to vpump_main.mpy by `vpump flash`); see
# docs/bench-testing.md.  Ctrl-C returns to the REPL with the piezo off and the motor disabled.
import vpump_main

vpump_main.run()
