# s3rver, a small S3-compatible server keeping objects on its local disk: for tests and for trying
# Litebase out, not for production (use S3, MinIO, R2 or Ceph). Built by infra/build-images.sh from
# a context holding the packages s3rver needs, taken from this checkout's node_modules and packed
# into node_modules.tar.
ARG BASE_IMAGE=litebase-base:local
FROM ${BASE_IMAGE}

# s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 has only in its legacy provider.
ENV NODE_OPTIONS=--openssl-legacy-provider

COPY --chown=1000:1000 data/s3/ /data/s3/
ADD node_modules.tar /s3rver/
USER 1000:1000
EXPOSE 4568

# Objects live in /data/s3 (mount a volume there to keep them). s3rver accepts the access key id
# S3RVER with the secret S3RVER. Buckets are addressed by path only (http://host:4568/bucket/key,
# LITEBASE_S3_FORCE_PATH_STYLE), since a host name such as "s3" would otherwise be taken for a
# bucket. The buckets to create come last:
#   docker run litebase-s3rver:local --configure-bucket one --configure-bucket two
ENTRYPOINT ["node", "/s3rver/node_modules/s3rver/bin/s3rver.js", "--directory", "/data/s3", "--address", "0.0.0.0", "--port", "4568", "--no-vhost-buckets"]
CMD ["--configure-bucket", "litebase"]
