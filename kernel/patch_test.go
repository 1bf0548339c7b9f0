package kernel

import "testing"

func TestPatchHunk(t *testing.T) {
	patch := []byte(`From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] two files

---
 a.c | 2 +-
diff --git a/dir/a.c b/dir/a.c
--- a/dir/a.c
+++ b/dir/a.c
@@ -1,3 +1,3 @@
 one
-two
+TWO
@@ -10,2 +10,2 @@
 ten
-eleven
+ELEVEN
diff --git a/b.c b/b.c
--- a/b.c
+++ b/b.c
@@ -5,1 +5,1 @@
-five
+FIVE
-- 
2.39.0
`)
	tests := []struct {
		file string
		n    int
		want string
	}{
		{"dir/a.c", 1, "@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n"},
		{"dir/a.c", 2, "@@ -10,2 +10,2 @@\n ten\n-eleven\n+ELEVEN\n"},
		{"b.c", 1, "@@ -5,1 +5,1 @@\n-five\n+FIVE\n"},
		{"b.c", 2, ""},
		{"c.c", 1, ""},
	}
	for _, tc := range tests {
		if got := PatchHunk(patch, tc.file, tc.n); got != tc.want {
			t.Errorf("PatchHunk(%s, %d) = %q, want %q", tc.file, tc.n, got, tc.want)
		}
	}
}
