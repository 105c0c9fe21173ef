"""Model services (``clusterctl serve``), their pure part: the typed request a service is made
of, and the rules that decide its replicas. The controller runs them (``controller/services.py``)
and the API's endpoint carries their requests (``api/routes/service_proxy.py``)."""
