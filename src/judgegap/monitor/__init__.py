"""Drift monitoring of self-scores in production logs."""

from judgegap.monitor.drift import LOG_SCHEMA, MonitorResult, monitor_log, read_log

__all__ = ["LOG_SCHEMA", "MonitorResult", "monitor_log", "read_log"]
