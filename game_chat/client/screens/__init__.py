"""The window's screens: connect, then chat. Each has handle_event / update / draw / resize."""
