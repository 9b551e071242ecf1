"""The database and the domain rules that hold whichever door a change came through."""
