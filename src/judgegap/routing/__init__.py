"""Routing and escalation on a self-score: risk-coverage curves, thresholds, and an embeddable Router."""

from judgegap.routing.curves import (choose_threshold, cost_curve, cross_validated_threshold, risk_coverage)
from judgegap.routing.router import Decision, Router

__all__ = ["Decision", "Router", "choose_threshold", "cost_curve", "cross_validated_threshold", "risk_coverage"]
