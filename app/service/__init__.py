"""Service assembly: `ServiceBuilder`, `ServiceInfo`, health, info and offline docs."""
