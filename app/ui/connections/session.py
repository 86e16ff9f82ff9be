"""What connecting needs besides the backend: a profile's secret (the embedded
registry's own credentials, an answer given earlier in this session, the keyring),
the login dialog's answer remembered as the user chose, the profiles the
Connection menu offers, and the embedded registry's line in the status bar.

The window owns the connection itself (``connect_to``): every feature follows it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QLabel, QMenu, QWidget

from app.client.credentials import CredentialStore, KeyringUnavailable
from app.client.embedded import EmbeddedError, EmbeddedRegistry, State
from app.client.profiles import Profile
from app.ui.common.error_bar import ErrorBar
from app.ui.common.settings import Settings
from app.ui.connections import login_dialog

# While the demo is seeded beside its registry, the window refreshes this often.
SEED_REFRESH_S = 3.0


class Secrets:
    def __init__(self, store: CredentialStore, embedded: Callable[[], EmbeddedRegistry | None]):
        self.store = store
        self._embedded = embedded
        self.session: dict[str, str] = {}  # when there is no keyring

    def secret_for(self, profile: Profile) -> str | None:
        embedded = self._embedded()
        if profile.embedded and embedded is not None and embedded.credentials:
            return embedded.credentials.password
        if profile.secret_account in self.session:
            return self.session[profile.secret_account]
        if not profile.username:
            return None
        try:
            return self.store.get(profile.secret_account)
        except KeyringUnavailable:
            return None

    async def ask(
        self, parent: QWidget, profile: Profile, reason: str
    ) -> tuple[Profile, str] | None:
        """The login dialog; the profile with the user name given, and the secret."""
        answer = await login_dialog.ask_password(parent, profile, reason, self.store.available)
        if answer is None:
            return None
        username, secret, remember = answer
        if username != profile.username:
            profile = Profile(**{**profile.to_dict(), "username": username})
        if remember and not profile.embedded:
            try:
                self.store.set(profile.secret_account, secret)
            except KeyringUnavailable:
                self.session[profile.secret_account] = secret
        else:
            self.session[profile.secret_account] = secret
        return profile, secret


def all_profiles(settings: Settings, embedded: EmbeddedRegistry | None) -> list[Profile]:
    """The saved profiles, and the embedded registry's first while it runs."""
    out = settings.profiles()
    if embedded is not None and embedded.state is State.RUNNING:
        with contextlib.suppress(EmbeddedError):
            out.insert(0, embedded.profile())
    return out


def fill_connection_menu(
    menu: QMenu,
    profiles: list[Profile],
    current: Profile | None,
    open_profile: Callable[[Profile], object],
    manage: QAction,
) -> None:
    """The Connection button's menu: one checkable entry per profile, then Connections…"""
    menu.clear()
    group = QActionGroup(menu)
    for profile in profiles:
        action = menu.addAction(profile.name)
        action.setCheckable(True)
        action.setChecked(current is not None and current.name == profile.name)
        action.setToolTip(profile.base_url)
        group.addAction(action)
        action.triggered.connect(lambda _c=False, p=profile: open_profile(p))
    menu.addSeparator()
    menu.addAction(manage)


class EmbeddedStatus(QObject):
    """The embedded (or demo) registry's state in the status bar, its failures in the
    error bar, and, while the demo is seeded beside it, a refresh now and then."""

    def __init__(
        self,
        label: QLabel,
        error_bar: ErrorBar,
        may_refresh: Callable[[], bool],
        refresh: Callable[[], None],
    ) -> None:
        super().__init__(label)
        self.label = label
        self.error_bar = error_bar
        self.embedded: EmbeddedRegistry | None = None
        self._may_refresh = may_refresh
        self._refresh = refresh
        self._seeding: int | None = None  # the demo's seeding progress last shown
        self._seed_refreshed = 0.0  # when its seeding last made the window refresh

    def show_state(self, state: State) -> None:
        embedded = self.embedded
        if embedded is None:
            return
        where = f" at {embedded.url}" if state is State.RUNNING and embedded.url else ""
        kind = "Demo registry" if embedded.demo else "Embedded registry"
        text = f"{kind}: {state.value}{where}"
        seeding = embedded.seeding
        if seeding is not None:
            text += f", seeding sample data ({seeding} %)"
        self.label.setText(text)
        tip = f"Data in {embedded.data_dir}"
        if state is State.FAILED and embedded.error:
            tip += f"\n{embedded.error}"
            self.error_bar.show_message(embedded.error)
        if embedded.seed_error and self._seeding is not None:
            self.error_bar.show_message(embedded.seed_error)
        self.label.setToolTip(tip)
        self.label.setAccessibleDescription(text)
        self._follow_seeding(seeding)

    def _follow_seeding(self, seeding: int | None) -> None:
        """While the demo is seeded beside its running registry, show what has landed:
        refresh as F5 does every few seconds, and once more when the seeding ends."""
        was, self._seeding = self._seeding, seeding
        if not self._may_refresh():
            return
        now = time.monotonic()
        finished = seeding is None and was is not None
        if finished or (seeding is not None and now - self._seed_refreshed >= SEED_REFRESH_S):
            self._seed_refreshed = now
            self._refresh()
