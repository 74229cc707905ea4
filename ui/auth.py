"""Optional shared-password gate for a Tuneboard reachable beyond localhost.

When $TUNEBOARD_PASSWORD is set, each browser session must enter it before any page (or the
sidebar, which lists runs) is drawn; success is remembered in that session's st.session_state, so
a reload or a new tab asks again. When it is unset there is no gate: the default server binds to
127.0.0.1 (.streamlit/config.toml). This is one shared secret, not user accounts; put a reverse
proxy with TLS in front of an exposed server (README, "Exposing Tuneboard").
"""

from __future__ import annotations

import hmac
import os
import time

import streamlit as st

from core.present import text

PASSWORD_ENV = "TUNEBOARD_PASSWORD"
AUTH_KEY = "tb_authenticated"
PASSWORD_KEY = "tb_auth_password"
WRONG_DELAY_S = 1.0  # slows guessing from one session


def configured_password() -> str | None:
    """The shared password from the environment; None (no gate) when unset or empty."""
    return os.environ.get(PASSWORD_ENV) or None


def password_matches(entered: str, expected: str) -> bool:
    """Constant-time comparison, so response times do not leak how much of a guess was right."""
    return hmac.compare_digest(entered.encode("utf-8"), expected.encode("utf-8"))


def require_password(pages: list) -> None:
    """Draw the password form and stop the script until this session has entered the password.

    pages: the router's st.Page list, navigated hidden while the form shows.
    """
    expected = configured_password()
    if expected is None or st.session_state.get(AUTH_KEY):
        return
    # Calling st.navigation keeps the server in router mode (no v1 page list of pages/ in the
    # sidebar) while hiding the navigation; the chosen page is not run.
    st.navigation(pages, position="hidden")
    st.title(text.AUTH_TITLE)
    st.caption(text.AUTH_CAPTION)
    with st.form("tb_auth_form"):
        entered = st.text_input(text.AUTH_PASSWORD, type="password", key=PASSWORD_KEY)
        submitted = st.form_submit_button(text.AUTH_UNLOCK, type="primary")
    if submitted:
        if password_matches(entered, expected):
            st.session_state[AUTH_KEY] = True
            st.rerun()
        time.sleep(WRONG_DELAY_S)
        st.error(text.AUTH_WRONG, icon=":material/lock:")
    st.stop()
