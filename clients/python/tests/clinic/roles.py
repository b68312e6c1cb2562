def role_of(user) -> str:  # type: ignore[no-untyped-def]
    # The seed keeps a role on its User; this test project derives it from the username.
    return "front_desk" if user.username.startswith("desk") else "provider"
