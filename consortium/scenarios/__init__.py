"""Scripted business flows of DOMAIN.md, written as YAML a user can copy and edit, run against a
live network by a small runner that narrates every step and fails loudly on any surprise."""
