"""Standalone client for Kraken's Prime REST API, and a faithful local sandbox.

This package never imports Django.
"""
