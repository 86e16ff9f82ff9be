"""Connecting: the Connections dialog (profiles, test connection), the login
dialog, where a profile's secret comes from, the Connection menu's profiles and
the embedded registry's status line (:mod:`.session`)."""
