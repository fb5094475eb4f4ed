# Script mode: generates the test PKI with the openssl CLI into OUT_DIR.
#   cmake -DOPENSSL=/usr/bin/openssl -DOUT_DIR=<dir> -P make_test_certs.cmake
# Files (all PEM, EC P-256 keys, valid 10 years):
#   ca.pem/ca.key                       the trusted test CA
#   server.pem/server.key               CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by ca
#   untrusted_ca.pem/untrusted_ca.key   a CA no client trusts
#   untrusted_server.pem/.key           same names as server.pem, signed by untrusted_ca
#   other_host.pem/other_host.key       SAN DNS:other-host.invalid only, signed by ca
# Everything is written to a temporary folder first and moved into place at
# the end, so an interrupted run never leaves a half-made set behind.
if(NOT OPENSSL OR NOT OUT_DIR)
  message(FATAL_ERROR "usage: cmake -DOPENSSL=<openssl> -DOUT_DIR=<dir> -P make_test_certs.cmake")
endif()

set(work ${OUT_DIR}/.tmp)
file(REMOVE_RECURSE ${work})
file(MAKE_DIRECTORY ${work})

# A self-contained openssl config, so the system's openssl.cnf cannot add
# conflicting extensions.
file(WRITE ${work}/openssl.cnf "
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[localhost_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
[other_host_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:other-host.invalid
authorityKeyIdentifier = keyid
")

function(run_openssl)
  execute_process(COMMAND ${OPENSSL} ${ARGN} WORKING_DIRECTORY ${work} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "openssl ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
endfunction()

function(make_ca name common_name)
  run_openssl(req -x509 -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
              -keyout ${name}.key -out ${name}.pem -days 3650 -subj "/CN=${common_name}" -extensions ca_ext)
endfunction()

function(make_leaf name common_name ca extensions serial)
  run_openssl(req -new -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
              -keyout ${name}.key -out ${name}.csr -subj "/CN=${common_name}")
  run_openssl(x509 -req -in ${name}.csr -CA ${ca}.pem -CAkey ${ca}.key -set_serial ${serial} -days 3650
              -extfile openssl.cnf -extensions ${extensions} -out ${name}.pem)
  file(REMOVE ${work}/${name}.csr)
endfunction()

make_ca(ca "WEP Test CA")
make_ca(untrusted_ca "WEP Untrusted Test CA")
make_leaf(server localhost ca localhost_ext 1001)
make_leaf(untrusted_server localhost untrusted_ca localhost_ext 2001)
make_leaf(other_host other-host.invalid ca other_host_ext 1002)

set(files ca.pem ca.key untrusted_ca.pem untrusted_ca.key server.pem server.key untrusted_server.pem
          untrusted_server.key other_host.pem other_host.key)
foreach(f ${files})
  file(RENAME ${work}/${f} ${OUT_DIR}/${f})
endforeach()
file(REMOVE_RECURSE ${work})
