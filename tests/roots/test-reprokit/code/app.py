# FIXTURE: stands in for the reproduction app; only its bytes matter (code_hash).
print('fixture app')
