# The gateway in a container: `docker build -t sip-webrtc-gateway .` (docs/deploy-single.md).
# Stage 1 builds wheels for the gateway (with the native media fast lane compiled) and its dependencies;
# stage 2 installs them on a slim Debian base without a compiler and runs as an unprivileged user.

FROM python:3.11-slim-bookworm AS build
# gcc and the C headers build gateway/media/fastlane/_fastlane.c (the fast lane is optional at install time:
# the check below makes this image fail to build rather than ship without it)
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE gateway.yaml ./
COPY gateway ./gateway
COPY sdp ./sdp
COPY sipcore ./sipcore
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
    && python -c "import glob, sys, zipfile; names = zipfile.ZipFile(glob.glob('/wheels/sip_webrtc_gateway-*.whl')[0]).namelist(); sys.exit(0 if any('_fastlane' in n and n.endswith('.so') for n in names) and 'gateway/gateway.sample.yaml' in names else 'the wheel lacks the fast lane or the sample config')"

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/sip-webrtc-gateway --create-home \
        --shell /usr/sbin/nologin gateway \
    && mkdir -p /etc/sip-webrtc-gateway \
    && sip-webrtc-gateway init /etc/sip-webrtc-gateway/gateway.yaml \
    && chown -R gateway:gateway /etc/sip-webrtc-gateway \
    && chmod 0700 /var/lib/sip-webrtc-gateway
# Mount your own gateway.yaml over /etc/sip-webrtc-gateway/gateway.yaml; these override its listen hosts
# so it is reachable in a container (GATEWAY_<SECTION>__<KEY>, docs in gateway.yaml). With no config
# mounted the sample's demo users (public secrets), no session_secret and an open /metrics would be served
# on 0.0.0.0: `run` refuses that and says what to set (gateway/config/exposure.py; `run --insecure-lab`
# for a throwaway lab).
ENV GATEWAY_CONFIG=/etc/sip-webrtc-gateway/gateway.yaml \
    GATEWAY_STATE_DIR=/var/lib/sip-webrtc-gateway/state \
    GATEWAY_HTTP__HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /var/lib/sip-webrtc-gateway
VOLUME ["/var/lib/sip-webrtc-gateway"]
# HTTP (page, WebSocket, API), SIP; RTP uses media.rtp_ports (run with --network host, or publish them)
EXPOSE 8080/tcp 5060/udp 5060/tcp
# /healthz at the port and scheme of the config in use ($GATEWAY_CONFIG with the GATEWAY_* overrides:
# http.port, https when http.tls is set): `sip-webrtc-gateway healthcheck`, without the media stack
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "gateway.cli_healthcheck"]
# SIGTERM ends the calls with BYE and exits within 2 s; SIGHUP reloads users, routes and certificates
STOPSIGNAL SIGTERM
ENTRYPOINT ["sip-webrtc-gateway"]
CMD ["run"]
