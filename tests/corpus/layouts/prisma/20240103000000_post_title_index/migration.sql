-- Written by hand: Prisma runs it as a script, outside one transaction.
CREATE INDEX CONCURRENTLY "Post_title_idx" ON "Post"("title");
