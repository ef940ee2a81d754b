"""The embedded deployment: three organizations, their users and sample data, one command."""
