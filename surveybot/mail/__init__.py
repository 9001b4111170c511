"""E-mail: rendering templates, building messages, and the transports that deliver them."""
