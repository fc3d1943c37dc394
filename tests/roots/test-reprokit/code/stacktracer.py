# FIXTURE: stands in for the stack tracer; only its bytes matter (code_hash).
print('fixture tracer')
