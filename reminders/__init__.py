"""Time: the jobs that find what is due, claim it in the database and deliver it."""
